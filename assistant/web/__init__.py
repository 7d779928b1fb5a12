"""What a shared instance needs on the HTTP side, for the chat and `tutor serve` alike: accounts and logins that
hold up under abuse, the origin policy, body limits read before a body is, chat history and its ownership checks,
and uploads kept under opaque ids. SECURITY.md says what each protects against."""
