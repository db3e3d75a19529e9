"""The second factor: authenticator apps (TOTP), recovery codes and passkeys (WebAuthn).

- `crypto.py`: authenticator secrets encrypted at rest, with rotatable keys.
- `totp.py`, `recovery_codes.py`, `passkeys.py`: each factor, enrolled and checked.
- `pending.py`: the state between a right password and the second factor (no session yet).
- `stepup.py`: sensitive actions need a recent sign-in with every factor.
- `service.py`: enrolling, disabling and resetting factors, audited, with notices.
- `routes.py`: the pages; `cli.py`: `flask mfa reset|rotate-key`.
"""
