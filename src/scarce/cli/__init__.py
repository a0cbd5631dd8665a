"""The `scarce` command line (`scarce.cli.main`): one module per command, the shared options in
`scarce.cli.options`. The library never imports this package."""
