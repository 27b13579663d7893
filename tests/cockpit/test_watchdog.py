from cockpit.pipeline.watchdog import StallWatchdog


def step(t):
    return {"type": "step", "t": t}


def test_startup_grace_before_the_first_event():
    w = StallWatchdog(floor_s=5, factor=10, startup_grace_s=60, started_at=1000.0)
    assert not w.stalled(now=1059.0) and w.stalled(now=1061.0)


def test_rule_is_max_of_floor_and_factor_times_median_interval():
    w = StallWatchdog(floor_s=5, factor=10, startup_grace_s=60, started_at=0.0)
    for i in range(20):
        w.observe(step(100.0 + 2.0 * i))  # 2 s per step -> 20 s allowance
    last = 100.0 + 2.0 * 19
    assert w.allowance_s() == 20.0
    assert not w.stalled(now=last + 19.0) and w.stalled(now=last + 21.0)
    fast = StallWatchdog(floor_s=5, factor=10, startup_grace_s=60, started_at=0.0)
    for i in range(20):
        fast.observe(step(100.0 + 0.01 * i))
    assert fast.allowance_s() == 5.0  # the floor


def test_activity_extends_the_deadline_and_is_not_learned_as_a_step_interval():
    w = StallWatchdog(floor_s=5, factor=10, startup_grace_s=60, started_at=0.0)
    for i in range(10):
        w.observe(step(100.0 + i))
    w.observe({"type": "activity", "t": 110.0, "what": "eval", "expect_s": 300})
    assert not w.stalled(now=400.0) and w.stalled(now=411.0)
    w.observe(step(400.0))  # the long gap over the eval is not a step interval
    assert w.allowance_s() == 10.0


def test_other_events_are_not_progress():
    w = StallWatchdog(floor_s=5, factor=10, startup_grace_s=60, started_at=0.0)
    w.observe(step(100.0))
    w.observe({"type": "alert", "t": 200.0})
    assert w.silent_s(now=200.0) == 100.0
