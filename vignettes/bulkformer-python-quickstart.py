# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # BulkFormer quickstart (Python)
#
# AnnData in, AnnData out: embed every sample (`obsm["X_bulkformer"]`), impute the
# genes a data set lacks (`layers["bulkformer_imputed"]`), and look at both.
#
# This notebook is kept as a plain-text [jupytext](https://jupytext.readthedocs.io)
# script; open it in Jupyter (with jupytext installed) or run
# `jupytext --to notebook --execute vignettes/bulkformer-python-quickstart.py`.
#
# A real analysis loads the recommended pretrained model, bulkformer-latest: download
# it once, verified against the authors' checksums (`bulkformer download latest -o
# models/bulkformer-latest` on the command line, or
# `bulkformer.download.download_release("latest", "models/bulkformer-latest")`),
# then `bulkformer.load("models/bulkformer-latest")`; its sample embeddings default
# to the mean over each sample's measured genes.
# Here we use the tiny random-weight bundle that ships for examples: it runs in
# seconds, but its outputs carry no biology, so read the plots as a demonstration
# of the workflow, not as findings.

# %%
import tempfile
from pathlib import Path

import anndata
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score

import bulkformer

workdir = Path(tempfile.mkdtemp(prefix="bulkformer-quickstart-"))
bundle = bulkformer.tiny_bundle(workdir / "tiny-model", n_genes=300)
bundle.config.n_genes, bundle.config.feature_dim

# %% [markdown]
# ## Data: a simulated cohort as AnnData
#
# `bulkformer.simulate_cohort` draws a realistic cohort (tissues, diseases, batches,
# negative-binomial counts) with known ground truth. Each batch's assay misses some
# genes; we take one batch, as a lab would hold it: raw counts, samples x genes.

# %%
cohort = bulkformer.simulate_cohort(n_samples=90, vocabulary=bundle.genes, n_genes=None, seed=7,
                                    missing_fraction=0.15)
batch = sorted(cohort.missing_genes)[0]
counts = cohort.batch_counts(batch)
adata = anndata.AnnData(X=counts.to_numpy(dtype=np.float32), obs=cohort.obs.loc[counts.index].copy(),
                        var=pd.DataFrame(index=counts.columns))
adata

# %% [markdown]
# ## Sample embeddings
#
# `bulkformer.embed` returns a copy of the AnnData with the sample embedding in
# `obsm["X_bulkformer"]`, and the gene-mapping report and the model's description in
# `uns["bulkformer"]`. `lengths` gives the gene lengths for the counts -> TPM conversion
# (by default the model vocabulary's, then the annotation shipped with the package).

# %%
embedded = bulkformer.embed(adata, bundle, aggregate="mean", lengths=cohort.lengths, progress=False)
print(embedded.obsm["X_bulkformer"].shape)
report = embedded.uns["bulkformer"]["mapping_report"]
{key: report[key] for key in ("n_input_genes", "n_matched", "n_missing", "mask_prob")}

# %%
informative = embedded.obsm["X_bulkformer"].std(axis=0) > 0
scores = PCA(n_components=2).fit_transform(embedded.obsm["X_bulkformer"][:, informative])
fig, ax = plt.subplots(figsize=(5.5, 4.5))
for tissue, rows in embedded.obs.groupby("tissue", observed=True).indices.items():
    ax.scatter(scores[rows, 0], scores[rows, 1], label=tissue, s=25)
ax.set(xlabel="PC1", ylabel="PC2", title="BulkFormer sample embeddings")
ax.legend(title="tissue", fontsize=8)
plt.show()

# %% [markdown]
# A quick check of what the embedding knows: 5-fold cross-validated logistic
# regression of tissue from the embedding.

# %%
classifier = LogisticRegression(max_iter=2000)
accuracy = cross_val_score(classifier, embedded.obsm["X_bulkformer"], embedded.obs["tissue"], cv=5)
print(f"tissue accuracy from the embedding: {accuracy.mean():.2f} "
      f"(chance {embedded.obs['tissue'].value_counts(normalize=True).max():.2f})")

# %% [markdown]
# ## Imputation
#
# `bulkformer.impute` returns an AnnData over the vocabulary genes this batch did not
# measure, with the imputed log1p TPM in `X` and `layers["bulkformer_imputed"]`.
# The simulator knows the truth, so we can compare.

# %%
imputed = bulkformer.impute(adata, bundle, lengths=cohort.lengths, progress=False)
print(imputed)
truth = cohort.log_tpm.loc[imputed.obs_names, imputed.var_names]
values = imputed.layers["bulkformer_imputed"]
r = np.corrcoef(values.ravel(), truth.to_numpy().ravel())[0, 1]
fig, ax = plt.subplots(figsize=(5, 4.5))
ax.scatter(truth.to_numpy().ravel(), values.ravel(), s=4, alpha=0.4)
ax.set(xlabel="true log1p TPM (simulator)", ylabel="imputed log1p TPM",
       title=f"{imputed.n_vars} unmeasured genes, r = {r:.2f}")
plt.show()

# %% [markdown]
# To keep everything in one object, copy the results into the input AnnData:

# %%
adata.obsm["X_bulkformer"] = embedded.obsm["X_bulkformer"]
adata.uns["bulkformer"] = embedded.uns["bulkformer"]
adata.obsm["bulkformer_imputed"] = imputed.to_df()
adata
