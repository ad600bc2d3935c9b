"""Every option of a request, declared once: name, type, default, range or choices, help, and the methods using it.

From these declarations, and nowhere else, come the one validation of a request (`Spec.check`, run once per
generation before any model work, every bad value one sentence), the command line's flags, the batch jobs' fields
and the web app's inputs. Adding an option means adding one `Option` (and using it in the pipeline).

`spec.py` holds the machinery (`Option`, its value types, `Spec`, `Request`), `generation.py` the audio and panorama
requests, `commands.py` the commands' own options.
"""

from .commands import (
    ANALYZE,
    CLAP_MODELS,
    DEFAULT_MODELS,
    DTYPE_NAMES,
    EVALUATE,
    LAB,
    LOAD,
    OUTPUT,
    RUN,
    SAMPLE_RATES,
    SCHEDULER_CHOICES,
    SCHEDULER_CLASSES,
    SERVE,
    SIDECAR,
    STREAM_OUTPUT,
    markdown_table,
)
from .generation import (
    AUDIO,
    DEFAULT_SECONDS,
    METHOD_OPTIONS,
    PANORAMA,
    SPECS,
    STREAM,
    STREAM_OPTIONS,
    check_multiple,
)
from .spec import MAX_SEED, RANDOM_SEED, SOURCES, TYPES, Option, OptionType, Request, Rule, Spec, listed

__all__ = ["ANALYZE", "AUDIO", "CLAP_MODELS", "DEFAULT_MODELS", "DEFAULT_SECONDS", "DTYPE_NAMES", "EVALUATE", "LAB",
           "LOAD", "MAX_SEED", "METHOD_OPTIONS", "OUTPUT", "PANORAMA", "RANDOM_SEED", "RUN", "SAMPLE_RATES",
           "SCHEDULER_CHOICES", "SCHEDULER_CLASSES", "SERVE", "SIDECAR", "STREAM", "STREAM_OPTIONS", "STREAM_OUTPUT",
           "SOURCES", "SPECS", "TYPES", "Option",
           "OptionType", "Request", "Rule", "Spec", "check_multiple", "listed", "markdown_table"]
