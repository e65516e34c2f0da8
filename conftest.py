"""Root conftest: the fixtures every suite can use."""

pytest_plugins = [
    "fixtures.clusters",
    "fixtures.workloads",
    "fixtures.evidence",
    "fixtures.mesh",
    "fixtures.multicluster",
    "fixtures.kubectl",
    "fixtures.seeds",
]
