"""What `scarce bench` measured: bench.json field for field."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from scarce.bench.stage import STAGES


@dataclass
class BenchResult:
    """What `scarce bench` measured; bench.json holds it field for field and the report reads it."""

    preset: str
    recipe: str
    """The recipe asked for (`ensemble` or `regularized`)."""
    default_recipe: str
    """The row of `recipes` the headline reports (e.g. ensemble-k4)."""
    budget_tokens: int
    """The fixed budget: unique train tokens of the 1x store."""
    recipes: dict
    """Recipe name -> {val_loss, val_bpb, flops, run_ids, efficiency: {parametric, empirical}}."""
    efficiency: dict
    """The default recipe's data efficiency: {parametric, empirical}, each {value, low, high, warnings}."""
    fits: dict
    """Fit name -> its estimates with 95% intervals, or why it could not be fitted."""
    reference: list
    """Per reference size of data: the run best on select (multiple, train_tokens, epochs, losses, run_id),
    and `edge` when the chosen epochs sit at the edge of the grid tried."""
    single: list
    """Every regularized run on the budget (size, lr, weight decay, epochs, losses), the chosen ones marked."""
    ensemble: dict | None = None
    """The default recipe's ensemble: member ids, losses, flops and the val loss of every prefix k = 1..K."""
    findings: list = field(default_factory=list)
    """One entry per published finding: {id, name, verdict (reproduced, not reproduced, not shown, not
    identified, not run), reproduced (true/false/null, for older readers), value, low, high, unit,
    published, detail}."""
    standard: list = field(default_factory=list)
    """The standard recipe on the budget: per size and epochs, select, val and final-weights val loss."""
    regularized: list = field(default_factory=list)
    """Per size: the certified descent's best point, loss, certificate and run."""
    ensembles: dict = field(default_factory=dict)
    """Depth -> {member_ids, prefix_val_loss, member_val_loss}: every size's ensemble (joint limit)."""
    stages: dict = field(default_factory=dict)
    """The entries of the protocol's stages (`scarce.bench.stage.STAGES`), by each stage's JSON key, None for a
    stage that did not run: bench.json holds each at its top level, here (each stage's docstring says what it
    holds)."""
    hygiene: dict = field(default_factory=dict)
    """|select - val| on the reference runs and standard errors of paired loss differences (`hygiene_of`)."""
    cpt: dict | None = None
    """Continued pretraining: the pretraining corpus, the pretrained model's run and its val loss on the CPT
    corpus before any continued training (None when runs start from random weights)."""
    downstream: dict | None = None
    """The embedded task (`scarce_nextline`): items, random baseline, accuracy of each run on the budget and
    each recipe with a bootstrap interval over items, and the rank correlation of val loss with accuracy
    across the runs (Spearman, interval over items and runs)."""
    smoke: bool = False
    out: str = ""
    results: str = ""
    workers: int = 0
    run_ids: list = field(default_factory=list)
    token_passes: int = 0
    data: str = ""
    data_seed: int = 0
    """The sample of the corpus (`prepare`'s seed; 0 the hash order): one store's multiples say nothing of how
    they move with the documents drawn, which repeating over seeds measures."""
    wall_seconds: float = 0.0
    """This call's wall time (runs found done in the run store are not retrained)."""
    run_seconds: float = 0.0
    """Training time of every run of the bench, summed."""
    report: str = ""
    intervals: dict = field(default_factory=dict)
    """What every multiple's interval covers and leaves out: {covers, leaves_out, seed_noise {sd, seed_sd, df,
    groups, window_sd}, reference_noise, lack_of_fit {F, p, df}} (`scarce.bench.measured`)."""
    warnings: list = field(default_factory=list)
    """Caveats on the headline, one line each: fits at a bound, a reference at its grid's edge, a reference law
    missing its points, disagreeing multiples, seed noise not measured."""
    cost: dict | None = None
    """The device the report prices training on ({gpu, flops_per_s, mfu, price} from `--gpu`, `--gpu-price`,
    `--mfu`): each recipe's training FLOPs as device-hours and dollars; None when no device was named."""

    def to_json(self) -> dict:
        """bench.json: the fields in order, each stage's entry at the top level where `stages` stands."""
        out = {}
        for name, value in dataclasses.asdict(self).items():
            out.update(value if name == "stages" else {name: value})
        return out

    @classmethod
    def from_json(cls, d: dict) -> BenchResult:
        known = {f.name for f in dataclasses.fields(cls)} - {"stages"}
        entries = {key: d.get(key) for key in (s.json_key() for s in STAGES)}
        return cls(**{k: v for k, v in d.items() if k in known}, stages=entries)
