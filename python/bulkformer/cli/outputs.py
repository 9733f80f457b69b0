"""Output tables of the commands (csv/tsv(.gz), parquet, h5ad), written atomically."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from bulkformer.atomic import atomic_file, check_file_output

# a .gz text table is compressed by pandas, which infers it from the (staging) name's .gz
TABLE_SUFFIXES = {".csv": "csv", ".tsv": "tsv", ".txt": "tsv", ".csv.gz": "csv", ".tsv.gz": "tsv", ".txt.gz": "tsv",
                   ".parquet": "parquet", ".h5ad": "h5ad"}


def output_format(path: Path, allowed: dict[str, str]) -> str:
    """The format an output path names by its suffix (one of ``allowed``); the path is
    checked to be writable before any computation."""
    suffix = "".join(path.suffixes[-2:]) if path.name.endswith(".gz") else path.suffix
    fmt = allowed.get(suffix.lower())
    if fmt is None:
        raise ValueError(f"cannot tell the output format of {path}: use one of {', '.join(sorted(allowed))}")
    check_file_output(path)  # a directory there is refused now, not after the computation
    return fmt


def write_table(frame, path: Path, source: Optional[Path] = None, orientation: str = "samples_by_genes",
                 var=None, which: Optional[str] = None) -> None:
    """Write a samples x columns table to a temporary sibling, then rename. An h5ad output
    gets ``var`` (the columns' annotation; default: their names) and, for an h5ad
    ``source``, the source's sample annotations (obs), per-sample matrices (obsm, obsp) and
    uns, as the library's AnnData results do."""
    fmt = output_format(path, TABLE_SUFFIXES)
    with atomic_file(path) as staging:
        if fmt in ("csv", "tsv"):
            frame.to_csv(staging, sep="," if fmt == "csv" else "\t")
        elif fmt == "parquet":
            frame.to_parquet(staging)
        else:
            import anndata
            import numpy as np
            import pandas as pd

            from bulkformer.io import read_sample_slots

            slots = read_sample_slots(source, orientation=orientation) if source is not None else None
            sample_ids = [str(s) for s in frame.index]
            # rows of the output are the input's samples in the input's order
            carried = slots is not None and [str(s) for s in slots.obs.index] == sample_ids
            obs = (slots.obs.set_axis(pd.Index(sample_ids, name=slots.obs.index.name)) if carried
                   else pd.DataFrame(index=sample_ids))
            adata = anndata.AnnData(X=frame.to_numpy(dtype=np.float32), obs=obs,
                                    var=var if var is not None else pd.DataFrame(index=frame.columns.astype(str)))
            if carried:
                slots.attach(adata)
            # as the library's AnnData results record it (h5ad cannot store None)
            model = {k: v for k, v in (frame.attrs.get("model") or {}).items() if v is not None}
            adata.uns["bulkformer"] = {"mapping_report": frame.attrs.get("mapping_report", {}), "model": model,
                                       **({"which": which} if which is not None else {})}
            adata.write_h5ad(staging)
