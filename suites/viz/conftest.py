"""The viz suite's module-scoped app (see ``suites.viz._support``)."""

from suites.viz._support import viz_app as viz_app
