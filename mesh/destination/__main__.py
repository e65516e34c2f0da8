"""``python -m mesh.destination``: run the destination service."""

from mesh.destination.server import main

if __name__ == "__main__":
    main()
