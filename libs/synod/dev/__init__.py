"""Local dev tools (broker, `synod up`, demo, reload, chart data); may import roles and below."""
