"""Mail in and out. ``outbound`` turns replies into outbox rows; the mail work sends them."""
