"""Chapter parameters of the wrong type are refused with what was expected and how to pass it."""

import nbformat
import pytest

from memnotebooks import book


@pytest.fixture
def chapter(tmp_path):
    cell = nbformat.v4.new_code_cell('degrees = [0.0, 0.4]  # corruption degrees\nmodel = "mlp"\nsubset = None\nmax_epochs = 300\nthreshold = 0.99\nshow = True')
    cell.metadata["tags"] = ["parameters"]
    path = tmp_path / "01_chapter.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[cell], metadata={"kernelspec": {"name": "python3", "language": "python", "display_name": "Python 3"}}), path)
    return path


DEFAULTS = {"degrees": [0.0, 0.4], "model": "mlp", "subset": None, "max_epochs": 300, "threshold": 0.99, "show": True}


def test_the_defaults_and_values_of_their_types_pass(chapter):
    book.check_parameters(chapter, DEFAULTS)
    book.check_parameters(chapter, {**DEFAULTS, "degrees": (1, 0.5), "subset": 500, "threshold": 1, "max_epochs": 10})


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"degrees": "[1.5]"}, r"Parameter degrees of 01_chapter.ipynb takes a list of numbers like its default \[0.0, 0.4\], got '\[1.5\]' \(str\). "
                               r"papermill's -p passes text; pass it as YAML with -y, e.g. papermill 01_chapter.ipynb out.ipynb -y 'degrees: \[0.0, 0.4\]'"),
        ({"degrees": [0.2, "x"]}, r"takes a list of numbers like its default \[0.0, 0.4\], got \[0.2, 'x'\]"),
        ({"max_epochs": 2.5}, r"Parameter max_epochs of 01_chapter.ipynb takes an integer like its default 300, got 2.5 \(float\)"),
        ({"max_epochs": True}, r"takes an integer like its default 300, got True"),
        ({"model": 3}, r"Parameter model of 01_chapter.ipynb takes a string like its default 'mlp', got 3"),
        ({"show": 1}, r"Parameter show of 01_chapter.ipynb takes True or False like its default True, got 1"),
    ],
)
def test_a_parameter_of_another_type_is_named_with_what_it_takes(chapter, changes, message):
    with pytest.raises(TypeError, match=message):
        book.check_parameters(chapter, {**DEFAULTS, **changes})
