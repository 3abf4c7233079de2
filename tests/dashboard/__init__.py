"""Playwright tests of the dashboard, in headless Chromium against a live Daphne."""
