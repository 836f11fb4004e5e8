"""The web dashboard served at ``/``: pages, their static files, sign-in."""
