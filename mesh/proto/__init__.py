"""The mesh's control-plane APIs: ``.proto`` files and their generated Python code.

``destination.proto`` (``isthmus.destination.v1``), ``identity.proto``
(``isthmus.identity.v1``) and ``inbound.proto`` (``isthmus.policy.v1``).
Regenerate with ``python -m mesh.proto.generate``; the output is committed.
"""
