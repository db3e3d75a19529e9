"""The second factor: authenticator apps (TOTP), recovery codes and passkeys (WebAuthn).

- `crypto.py`: authenticator secrets encrypted at rest, with rotatable keys.
- `totp.py`, `recovery_codes.py`, `passkeys.py`: each factor, enrolled and checked.
- `pending.py`: the state between a right password and the second factor (no session yet).
- `service.py`: enrolling, disabling and resetting factors, audited, with notices; each
  change is a credential change (auth/credentials.py: versioned, revoking the rest).
- `routes.py`: the pages, every change behind the credential gate.
- `cli.py`: `flask mfa reset|rotate-key`.
"""
