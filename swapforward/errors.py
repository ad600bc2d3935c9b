"""The one exception type for user mistakes: its message is a single sentence meant to be shown as is."""


class SwapForwardError(ValueError):
    """A bad input or an unusable model/output path; the message names the value and what is allowed."""
