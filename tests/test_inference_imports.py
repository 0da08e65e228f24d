"""Recommending is numpy-only: no TensorFlow, and the same answers as the slow path.

That the numpy scores equal the Keras model's predictions for every profile and
movie is checked in test_training.py; these tests check what a fresh process
imports, and that the frame-free profile assignment equals the fitted pipeline.
"""

import itertools
import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from profile_rec.data import AGE_BUCKETS, GENDERS, GENRES, OCCUPATIONS
from profile_rec.profiles import feature_frame
from profile_rec.recommender import ProfileRecommender

pytestmark = pytest.mark.slow  # the artifacts_dir fixture trains a model

HEAVY = ("tensorflow", "keras", "tf_keras", "jax", "torch")

_LIBRARY_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import pandas as pd
    from profile_rec import ProfileRecommender

    model = ProfileRecommender.from_pretrained(sys.argv[1])
    one = model.recommend(age=25, gender="F", occupation="programmer",
                          genres=["Comedy", "Romance"], k=5)
    people = pd.DataFrame({"age": [56], "gender": ["M"], "occupation": ["retired"],
                           "genres": [("War",)]})
    batch = model.recommend_batch(people, k=5)
    scores = model.predict([0, 1], model.movie_index.movie_ids[:2])
    heavy = sorted({m.split(".")[0] for m in sys.modules} & set(sys.argv[2:]))
    print(json.dumps({
        "one": one["movie_id"].tolist(),
        "batch": batch["movie_id"].tolist(),
        "scores": scores.tolist(),
        "heavy": heavy,
    }))
    """
)

_CLI_SCRIPT = textwrap.dedent(
    """
    import sys
    from profile_rec.cli import app

    app(["recommend", "--model", sys.argv[1], "--age", "30", "--gender", "M",
         "--occupation", "writer", "--genres", "Drama", "-k", "3", "--json"],
        standalone_mode=False)
    heavy = sorted({m.split(".")[0] for m in sys.modules} & set(sys.argv[2:]))
    print("heavy:", ",".join(heavy))
    """
)


def _run_fresh(script: str, artifacts_dir) -> str:
    result = subprocess.run(
        [sys.executable, "-c", script, str(artifacts_dir), *HEAVY],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_fresh_process_recommends_without_tensorflow(artifacts_dir):
    out = json.loads(_run_fresh(_LIBRARY_SCRIPT, artifacts_dir).splitlines()[-1])
    assert out["heavy"] == []

    # And the answers are the ones this process gets from the same folder.
    model = ProfileRecommender.from_pretrained(artifacts_dir)
    expected = model.recommend(
        age=25, gender="F", occupation="programmer", genres=["Comedy", "Romance"], k=5
    )
    assert out["one"] == expected["movie_id"].tolist()
    alone = model.recommend(age=56, gender="M", occupation="retired", genres="War", k=5)
    assert out["batch"] == alone["movie_id"].tolist()
    np.testing.assert_array_equal(
        out["scores"], model.predict([0, 1], model.movie_index.movie_ids[:2])
    )


def test_cli_recommend_never_imports_tensorflow(artifacts_dir):
    lines = _run_fresh(_CLI_SCRIPT, artifacts_dir).splitlines()
    assert lines[-1] == "heavy: "
    expected = ProfileRecommender.from_pretrained(artifacts_dir).recommend(
        age=30, gender="M", occupation="writer", genres="Drama", k=3
    )
    rows = [json.loads(line) for line in lines[:-1]]
    assert [row["movie_id"] for row in rows] == expected["movie_id"].tolist()


def test_one_person_assignment_equals_the_fitted_pipeline(artifacts_dir):
    model = ProfileRecommender.from_pretrained(artifacts_dir)
    rng = np.random.default_rng(0)
    people = list(itertools.product(AGE_BUCKETS, GENDERS, OCCUPATIONS))
    genres = [
        tuple(rng.choice(GENRES, size=rng.integers(1, 5), replace=False))
        for _ in people
    ]
    ages, genders, occupations = zip(*people, strict=True)
    expected = model.pipeline.predict(feature_frame(ages, genders, occupations, genres))
    assert len(set(expected)) > 1  # the comparison covers several profiles
    assigned = [
        model.assign_profile(age=a, gender=g, occupation=o, genres=list(chosen))
        for (a, g, o), chosen in zip(people, genres, strict=True)
    ]
    np.testing.assert_array_equal(assigned, expected)
