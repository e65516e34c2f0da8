# Recipes; ./run bootstraps the environment first, then calls these.
set shell := ["bash", "-euo", "pipefail", "-c"]

py := ".venv/bin/python"
run_id := `date +%Y%m%d-%H%M%S`

# Lint, type-check, unit tests, then the e2e suites on the netns provider.
test: lint typecheck unit fuzz-short e2e

# ruff and the import-linter contract (mesh never imports harness).
lint:
    {{py}} -m ruff check .
    {{py}} -m ruff format --check .
    .venv/bin/lint-imports

# mypy strict on mesh and harness.
typecheck:
    {{py}} -m mypy

# Fast unit tests of the sans-IO cores.
unit *args:
    {{py}} -m pytest tests -q -n 2 {{args}}
    ISTHMUS_PROXY_COMPILED=0 {{py}} -m pytest tests/proxy -q -n 2 {{args}}

# A short run of every fuzzer (SEC-6), about 50 s; longer runs: ./run bench fuzz.
fuzz-short:
    {{py}} -m fuzz all --seconds 6 --artifacts reports/fuzz

# End-to-end suites on real clusters (netns provider), each topology brought up once:
# two-flat runs everything; two-hierarchical the hierarchical substrate checks and the
# gateway-mode suites (mirroring and traffic through the gateway); three-flat the chain
# and a federated service written by two links' controllers.
e2e *args:
    {{py}} -m pytest suites -v -n 2 --dist loadgroup --provider netns --topology two-flat --report-dir reports/test-{{run_id}}/two-flat {{args}}
    {{py}} -m pytest suites/policy -k "cluster_domain or trust_domain" -v --provider netns --topology two-flat-trust --report-dir reports/test-{{run_id}}/two-flat-trust {{args}}
    {{py}} -m pytest suites/substrate/test_workloads.py::test_hierarchical_pod_ips_unreachable_but_load_balancer_answers suites/multicluster/test_mirroring.py suites/multicluster/test_gateway_traffic.py -v -n 2 --provider netns --topology two-hierarchical --report-dir reports/test-{{run_id}}/two-hierarchical {{args}}
    {{py}} -m pytest suites/multicluster/test_chain.py suites/multicluster/test_federated.py::test_two_links_share_one_federated_service -v --provider netns --topology three-flat --report-dir reports/test-{{run_id}}/three-flat {{args}}

# Bring up two-flat, run every suite, write reports under reports/, tear down.
conformance *args:
    {{py}} -m pytest suites -v -n 2 --dist loadgroup --provider netns --topology two-flat --report-dir reports/conformance-{{run_id}} {{args}}

# The substrate suite on every pinned Kubernetes version but the default (the version matrix).
matrix *args:
    for v in $({{py}} -m harness versions | tail -n +2); do \
      {{py}} -m pytest suites/substrate -v -n 2 --k8s-version "$v" --report-dir "reports/matrix-{{run_id}}/$v" {{args}}; \
    done

# Bring a topology up by hand (for debugging): just up two-flat
up topology="two-flat":
    {{py}} -m harness clusters up {{topology}}

# Tear down what `up` created; `./run down --all` tears down every run's clusters.
down *args:
    {{py}} -m harness clusters down {{args}}

# Format the code.
fmt:
    {{py}} -m ruff format .
    {{py}} -m ruff check --fix .

# Benchmarks: print figures (not pass/fail).
bench *args:
    {{py}} -m bench {{args}}
