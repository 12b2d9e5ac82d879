"""Preset resolution shared by the methods' hyper-parameter modules."""


def resolve_section(section, presets: dict, preset: str) -> dict:
  """A method's hyper-parameters: the preset's values, overridden by every field of the
  config section that is set (not None).

  Sections declare preset-dependent fields as `placeholder(type)` (None) so that
  `--config.preset=anoonly_paper` changes their defaults while an explicit
  `--config.devnet.batch_size=256` still wins.
  """
  if preset not in presets:
    raise ValueError(f"preset={preset!r}; available: {sorted(presets)}")
  values = dict(presets[preset])
  for key, value in section.items():
    if value is not None:
      values[key] = value
  missing = [k for k, v in values.items() if v is None]
  if missing:
    raise ValueError(f"preset {preset!r} leaves {missing} unset")
  return values
