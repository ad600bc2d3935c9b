"""The `swapforward` command (`python -m swapforward ...`, `accelerate launch -m swapforward batch ...`)."""


def run() -> None:
    """Handle Ctrl-C and SIGTERM from the first moment (one line, no traceback), then run the command line."""
    from .runtime.signals import install

    install()
    from .frontends.cli import main

    main()


if __name__ == "__main__":
    run()
