"""Per-sample tables are matched to the data by sample ID with one set of rules, shared by
the tasks and fine-tuning: repeats and row-order indexes are errors, left-out samples are
counted in a warning, text where numbers belong is an error (never NaN)."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from bulkformer.labels import class_labels, match_samples, numeric_column

IDS = [f"S{i}" for i in range(6)]


def test_matched_by_id_in_data_order():
    labels = pd.Series(["a", "b", "a", "b", "a", "b"], index=IDS[::-1])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing left out: no warning
        matched = match_samples(labels, IDS)
    assert list(matched.index) == IDS
    assert list(matched) == ["b", "a", "b", "a", "b", "a"]
    # a list is taken in sample order and must have one entry per sample
    assert list(match_samples(list("abcdef"), IDS)) == list("abcdef")
    with pytest.raises(ValueError, match="got 5 labels for 6 samples: a list is taken in sample order"):
        match_samples(list("abcde"), IDS)


def test_repeated_ids_are_named():
    labels = pd.Series(list("abcdefgh"), index=IDS + ["S0", "S3"])
    with pytest.raises(ValueError, match=r"several rows for the same sample: 'S0' \(2 rows\), 'S3' \(2 rows\)"):
        match_samples(labels, IDS)


def test_default_range_index_is_not_a_row_order_match():
    labels = pd.Series(list("abcdef"))  # RangeIndex 0..5, data named S0..S5
    with pytest.raises(ValueError, match="matched by sample ID, not by row order"):
        match_samples(labels, IDS)
    # a RangeIndex that does name the samples (aligned input: IDs "0".."5") is fine
    assert list(match_samples(labels, [str(i) for i in range(6)]).index) == [str(i) for i in range(6)]


def test_left_out_samples_and_extra_rows_are_counted():
    labels = pd.Series(["a", None, "b", np.nan, "a", "x"], index=["S0", "S1", "S2", "S3", "S4", "OTHER"])
    with pytest.warns(UserWarning) as record:
        matched = match_samples(labels, IDS)
    message = str(record[0].message)
    assert "3 of 6 samples are left out: 1 have no row in the labels (e.g. 'S5'); 2 have a blank or NaN entry" in message
    assert "1 rows of the labels name samples that are not in the data (e.g. 'OTHER')" in message
    assert list(matched.index) == ["S0", "S2", "S4"]
    with pytest.raises(ValueError, match="no sample is in both the data"):
        match_samples(pd.Series(["a"], index=["X"]), IDS)


def test_table_rows_need_every_value_unless_told():
    table = pd.DataFrame({"time": [1.0, np.nan, 3.0], "event": [1, 0, np.nan]}, index=IDS[:3])
    with pytest.warns(UserWarning, match="2 have a blank or NaN entry"):
        assert list(match_samples(table, IDS[:3], what="survival table").index) == ["S0"]
    assert len(match_samples(table, IDS[:3], complete=False)) == 3


def test_text_in_a_numeric_column_is_an_error_not_nan():
    with pytest.raises(ValueError, match=r"column 'time': 1 values are not numbers \(e.g. '>10'\)"):
        numeric_column(pd.Series(["1.5", ">10", "3"]), "column 'time'")
    with pytest.raises(ValueError, match="infinite"):
        numeric_column(pd.Series([1.0, np.inf]), "column 'time'")
    parsed = numeric_column(pd.Series(["1.5", None, "2"]), "x")
    assert parsed.iloc[0] == 1.5 and np.isnan(parsed.iloc[1])
    assert list(numeric_column(pd.Series([True, False]), "x")) == [1.0, 0.0]


def test_continuous_labels_are_not_classes():
    values = pd.Series(np.linspace(0, 1, 30))
    with pytest.raises(ValueError, match="30 distinct values for 30 samples.*regression"):
        class_labels(values, numeric_hint="; use task='regression'")
    text, classes = class_labels(pd.Series([1, 2, 1, 2, 1, 2]))  # numeric codes of two classes are fine
    assert classes == ["1", "2"] and list(text) == ["1", "2", "1", "2", "1", "2"]
    with pytest.raises(ValueError, match="at least 2 classes"):
        class_labels(pd.Series(["a", "a"]))


def test_label_files_keep_numeric_looking_sample_ids(tmp_path):
    """The command line's label files: '001' was read as the number 1, so labels written
    with the data's own IDs matched no sample."""
    from bulkformer.cli.inputs import read_table

    path = tmp_path / "labels.csv"
    path.write_text("sample,tissue,age\n001,lung,61\n010,liver,70\n3,lung,55\n")
    table = read_table(path, "labels")
    assert list(table.index) == ["001", "010", "3"]
    assert table["age"].dtype.kind == "i"  # the other columns still parsed as numbers


def test_ids_that_are_the_others_cut_short_are_named_with_the_length():
    """TCGA: aliquot barcodes in the data, 15-character sample barcodes in the survival
    table; the error only said 'no sample is in both'."""
    from bulkformer.labels import match_samples

    data = ["TCGA-OR-A5J1-01A-11R-A29S-07", "TCGA-OR-A5J2-01A-11R-A29S-07", "TCGA-OR-A5J3-01A-11R-A29S-07"]
    survival = pd.DataFrame({"OS": [1, 0], "OS.time": [300, 1200]}, index=["TCGA-OR-A5J1-01", "TCGA-OR-A5J3-01"])
    with pytest.raises(ValueError, match=r"The data's IDs begin with the other's: 2 of 3 match when cut to their first "
                                         r"15 characters; .* \(id_length=15\)"):
        match_samples(survival, data, what="survival table")
    with pytest.raises(ValueError, match=r"The survival table's IDs begin with the other's: 2 of 2 match .* first 15 "):
        match_samples(survival.set_axis([i + "A-11R" for i in survival.index]), [d[:15] for d in data],
                      what="survival table")
    # a caller without the option (evaluate essentiality) gets the advice without naming it
    with pytest.raises(ValueError, match=r"first 15 characters; cut them to that length before matching$"):
        match_samples(survival, data, what="gene effects", id_length_option=False)


def test_whole_number_classes_keep_their_names_when_a_label_is_blank():
    """A 0/1 column with a blank entry is read as floats: the classes became '0.0' and '1.0'."""
    from bulkformer.labels import class_labels

    text, classes = class_labels(pd.Series([0, 1, None, 1, 0], dtype=float))
    assert classes == ["0", "1"] and text.tolist() == ["0", "1", "1", "0"]
    assert class_labels(pd.Series([0.5, 1.5, 0.5, 1.5]))[1] == ["0.5", "1.5"]
