"""Static files of the web console (HTML, ES modules, CSS) served by the gateway; imports nothing."""
