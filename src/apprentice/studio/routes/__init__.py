"""One router per resource: sign-in and account, judging pages, admin pages, the JSON API."""
