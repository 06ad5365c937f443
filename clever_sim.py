"""The pytest plugin's switch: ``-p clever_sim`` turns it on, ``-p no:clever_sim`` off.

The plugin itself is ``simulator.pytest_plugin``; this module only asks pytest to load it,
so whichever way it is named (entry point, ``-p clever_sim``, ``-p simulator.pytest_plugin``,
``pytest_plugins``) pytest registers that one module once, under its own name.
"""

pytest_plugins = ["simulator.pytest_plugin"]
