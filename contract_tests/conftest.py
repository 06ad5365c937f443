"""Registers the contract suite's pytest hooks and fixture (``contract_tests.plugin``)
when pytest collects this package: ``pytest --pyargs contract_tests --clever-config
partner.toml`` from the project root. (From elsewhere, add ``-p contract_tests.plugin``.)
"""

from contract_tests.plugin import (contract, pytest_addoption,  # noqa: F401 - pytest hooks
                                   pytest_collection_modifyitems, pytest_terminal_summary)
