"""The Gradio demo, shipped with profile_rec as ``profile_rec.space_app``.

Its files are what :func:`profile_rec.space.space_files` uploads to a Space; this
``__init__`` is not among them.
"""
