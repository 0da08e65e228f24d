"""The model card template, shipped with profile_rec as ``profile_rec.model_card``."""
