"""Specs to ready models: registry names, user files, other libraries' models, weight files."""
