"""_options.check_dict_form: the dict forms of list options through Ansible's ArgumentSpecValidator."""
import pytest

from ansible_collections.archfleet.multiarch.plugins.module_utils._errors import OptionError
from ansible_collections.archfleet.multiarch.plugins.module_utils._options import check_dict_form

SPEC = dict(image=dict(type="str", required=True), platform=dict(type="raw"), platforms=dict(type="raw"))
RULES = dict(mutually_exclusive=[("platform", "platforms")])


def check(value):
    return check_dict_form(value, "sources[2]", SPEC, "image", "a reference string", **RULES)


def test_the_short_form_and_the_dict_form_give_the_same_dict():
    assert check("x/app") == check({"image": "x/app"}) == {"image": "x/app", "platform": None, "platforms": None}


def test_a_key_set_to_null_is_a_key_not_given():
    assert check({"image": "x/app", "platform": None, "platforms": ["linux/amd64"]})["platforms"] == ["linux/amd64"]


@pytest.mark.parametrize("value, message", [
    ({"image": "x/app", "arch": "arm64", "os": "linux"},
     r"^Unsupported parameters: sources\[2\]\.arch, sources\[2\]\.os\. Supported parameters include: image, platform, "
     r"platforms\.$"),
    ({"platform": "linux/arm64"}, r"^missing required arguments: image found in sources\[2\]$"),
    ({"image": "x/app", "platform": "linux/arm64", "platforms": ["linux/arm64"]},
     r"^parameters are mutually exclusive: platform\|platforms found in sources\[2\]$"),
    (42, r"^sources\[2\] must be a reference string or a dict with image, platform, platforms; got int$"),
    ([{"image": "x/app"}], r"^sources\[2\] must be a reference string or a dict with image, platform, platforms; got list$"),
])
def test_bad_items_name_the_option_path_the_value_and_what_is_allowed(value, message):
    with pytest.raises(OptionError, match=message):
        check(value)
