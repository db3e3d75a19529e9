"""Account recovery by email: forgot and reset password, verify and confirm addresses."""
