from trainer.health import GradHealth


def test_vanishing_is_raised_once_after_fifty_small_steps_and_rearms():
    h = GradHealth()
    raised = [h.observe(1e-6) for _ in range(60)]
    codes = [a[0][0] for a in raised if a]
    assert codes == ["grad_vanishing"] and raised[49] and not raised[48]
    h.observe(1.0)
    assert [a for _ in range(50) for a in h.observe(1e-6)][0][0] == "grad_vanishing"


def test_exploding_against_the_running_median_with_cooldown():
    h = GradHealth()
    for _ in range(20):
        assert h.observe(1.0) == []
    alerts = h.observe(150.0)
    assert alerts and alerts[0][0] == "grad_exploding" and "150" in alerts[0][1]
    assert h.observe(150.0) == []  # one alert per episode, not one per step
    assert h.observe(50.0) == []   # 50x the median is not exploding


def test_non_finite_norms_are_ignored_here():
    h = GradHealth()
    assert h.observe(float("nan")) == [] and h.observe(float("inf")) == []
