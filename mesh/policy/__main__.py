"""``python -m mesh.policy``: run the policy service."""

from mesh.policy.server import main

if __name__ == "__main__":
    main()
