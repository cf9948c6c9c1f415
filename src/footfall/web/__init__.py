"""The web pages: sign-in and accounts, the dashboard, its charts, templates and static files."""
