"""Which clusters the ``linked`` fixture links, per topology."""

from __future__ import annotations

from fixtures.multicluster import planned_links


def test_two_clusters_source_mirrors_target() -> None:
    assert planned_links(["source", "target"]) == [("source", "target")]


def test_three_clusters_make_the_chain_target_source_west() -> None:
    assert planned_links(["source", "target", "west"]) == [
        ("source", "target"),
        ("west", "source"),
    ]


def test_other_names_link_the_first_two() -> None:
    assert planned_links(["east", "north"]) == [("east", "north")]
    assert planned_links(["alone"]) == []
