"""Recipes: YAML files validated by pydantic, one schema per stage."""

from codedance_cli.recipes.loader import STAGE_SCHEMAS, find_recipe, load_recipe, schema_for

__all__ = ["STAGE_SCHEMAS", "find_recipe", "load_recipe", "schema_for"]
