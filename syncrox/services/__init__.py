"""One Trio server per service, the room registry, and the runner that starts them all."""
