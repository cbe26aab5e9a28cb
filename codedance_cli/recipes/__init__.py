"""Recipes: YAML files validated by pydantic, one schema per stage."""

from codedance_cli.recipes.loader import STAGE_SCHEMAS, load_recipe, schema_for

__all__ = ["STAGE_SCHEMAS", "load_recipe", "schema_for"]
