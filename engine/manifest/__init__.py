"""Manifests: the model, YAML with positions, binding, apply, the catalog, the schema and drafts."""
