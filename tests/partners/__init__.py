"""Partner apps the contract suite is proved against (see tests/test_contract_suite.py)."""
