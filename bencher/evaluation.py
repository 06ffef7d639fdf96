"""What the bencher found out about one candidate: `Evaluation`, the fields of its `Result` message.

Its own module because both the pipeline (which makes one) and the metrics (which count one) need it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from bus.schema import Verdict

DETAIL_MAX_CHARS = 4096
"""Result.detail's limit on the wire."""


@dataclass(frozen=True)
class Evaluation:
    verdict: Verdict
    detail: str = ""
    metric: str = ""
    """The problem's figure of merit (`gflops` or `gbps`): the unit of the rate_* and *_rate fields."""
    rate_median: float = 0.0
    """Median of the timed calls' rates in the metric's unit: what the reward is computed from."""
    rate_min: float = 0.0
    rate_max: float = 0.0
    gflops_median: float = 0.0
    """Floating-point rate (0 for a problem that counts no flops): checked against the node's peak."""
    gflops_min: float = 0.0
    gflops_max: float = 0.0
    cv: float = 0.0
    repetitions: int = 0
    compile_s: float = 0.0
    run_s: float = 0.0
    cached: bool = False
    naive_rate: float = 0.0
    """This node's rate for the problem's naive reference at the same size (0: not measured)."""
    vendor_rate: float = 0.0
    """This node's rate for the vendor baseline (0: the problem has none, or its library is missing)."""
    calibration_gflops: float = 0.0
    host: str = ""
    slurm_job_id: str = ""
    threads: int = 0
    node_class: str = ""

    def result_fields(self) -> dict[str, Any]:
        fields = asdict(self)
        fields["verdict"] = self.verdict
        fields["detail"] = self.detail[:DETAIL_MAX_CHARS]
        return fields
