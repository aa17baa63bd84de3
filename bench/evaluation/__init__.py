"""A run: plan the cells, score each (model, condition) per image, write the rows."""
