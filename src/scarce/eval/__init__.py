"""scarce.eval: loss on a split (`loss`), and downstream tasks: a run or an ensemble scoring lm-eval's
requests (`scoring`), the lm-evaluation-harness adapter (`harness`), CORE (`core`) and the embedded
task built from a store's val split (`nextline`)."""
