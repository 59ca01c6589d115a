"""The hub's web console, behind login: admin accounts (admins and read-only
auditors), server-side sessions, CSRF and login throttling, and the page shell.

What others use: `hub.console.auth` (the interface pages are written against:
console_page, console_action, current_admin, render, console_database, form_fields,
audit_actor), `hub.console.console_app.console_app` (the ASGI app mounted at /console),
and `hub.console.admin_accounts` (the CLI's account commands). Pages themselves live in
`hub.console.pages`, whose `routes` list the console app mounts.
"""
