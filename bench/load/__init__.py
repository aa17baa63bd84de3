"""Model specs to ready models: registry names, user files, other libraries' models, and weight
files."""
