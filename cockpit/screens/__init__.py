"""Cockpit screens: picker, dashboard, run detail, help and the small modals."""
