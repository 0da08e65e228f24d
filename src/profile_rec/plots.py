"""Pictures of what a trained model learned, for the model card."""

from __future__ import annotations

import io
from typing import Any


def profiles_png(config: dict[str, Any]) -> bytes:
    """A heat map of each profile's favourite genres against the average user.

    Each cell is the share of a profile's members who count the genre among their
    favourites minus that share over all users: red leans towards the genre, blue
    away from it.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    genres = config["vocabulary"]["genres"]
    profiles = config["profiles"]
    shares = np.array([[p["genre_share"][g] for g in genres] for p in profiles])
    sizes = np.array([p["size"] for p in profiles], dtype=float)
    average = (shares * sizes[:, None]).sum(axis=0) / max(sizes.sum(), 1.0)
    lean = shares - average
    limit = max(float(np.abs(lean).max()), 1e-9)

    fig, ax = plt.subplots(figsize=(10, 0.45 * len(profiles) + 1.8), dpi=100)
    image = ax.imshow(lean, cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto")
    ax.set_xticks(range(len(genres)), genres, rotation=45, ha="right")
    ax.set_yticks(
        range(len(profiles)), [f"{p['id']} ({p['size']} users)" for p in profiles]
    )
    ax.set_xlabel("favourite genre")
    ax.set_ylabel("profile")
    ax.set_title("How each profile's favourite genres differ from the average user")
    fig.colorbar(image, ax=ax, label="share of members minus overall share")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", metadata={"Software": None})
    plt.close(fig)
    return buffer.getvalue()
