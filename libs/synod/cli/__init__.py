"""The `synod` command line, one typer sub-app per module; top layer: may import any layer."""
