"""Every method's hyper-parameters, one module per method name: its config section with
every default (`section()`), its presets (`PRESETS`, where the references disagree), how
a config resolves to the dict its factory gets (`resolve(cfg)`), and what AnoOnly changes
in it (`anoonly_changes(hp)`; None = no AnoOnly variant, `NO_ANOONLY` says why).

JAX-free (ml_collections only), so the command line checks a config before importing
JAX; `ssadjax.config` assembles the sections and `ssadjax.methods.REGISTRY` pairs each
module with its method's factory.
"""

from ssadjax.hparams import bgad, clad, deepsad, deepsvdd, devnet, feawad, funad, prenet
from ssadjax.hparams.common import resolve_section

MODULES = {"deepsad": deepsad, "deepsvdd": deepsvdd, "prenet": prenet, "devnet": devnet,
           "feawad": feawad, "funad": funad, "bgad": bgad, "clad": clad}

# Methods that may use labels but have no AnoOnly variant, with the reason.
NO_ANOONLY = {name: module.NO_ANOONLY for name, module in MODULES.items()
              if hasattr(module, "NO_ANOONLY")}


__all__ = ["MODULES", "NO_ANOONLY", "resolve_section"]
