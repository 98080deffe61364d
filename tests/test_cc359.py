import pytest

from mrishift.data.cc359 import DOMAINS, CC359NameError, domain_of_case, expected_counts, format_name, parse_name


def test_parse_image_and_mask_names():
    image = parse_name("CC0030_philips_15_42_F.nii.gz")
    assert (image.case, image.domain, image.age, image.sex, image.is_mask) == ("CC0030", "philips_15", 42, "F", False)
    mask = parse_name("CC0180_siemens_3_61_M_ss.nii.gz")
    assert (mask.case, mask.domain, mask.is_mask) == ("CC0180", "siemens_3", True)
    assert format_name("CC0180", "siemens_3", 61, "M", mask=True) == "CC0180_siemens_3_61_M_ss.nii.gz"


@pytest.mark.parametrize("name, reason", [
    ("CC0030_toshiba_15_42_F.nii.gz", "unknown domain 'toshiba_15'"),
    ("CC0030_philips_7_42_F.nii.gz", "unknown domain 'philips_7'"),
    ("CC0030_philips_15_42.nii.gz", "does not follow CC359's convention"),
    ("CC0300_philips_15_42_F.nii.gz", "outside philips_15's range CC0001-CC0059"),
])
def test_bad_names_say_why(name, reason):
    with pytest.raises(CC359NameError, match=reason.replace("(", r"\(")):
        parse_name(name)


def test_domain_table_matches_cc359():
    assert expected_counts() == {"siemens_15": 60, "siemens_3": 60, "ge_15": 60, "ge_3": 60, "philips_15": 59,
                                 "philips_3": 60}
    assert sum(expected_counts().values()) == 359
    assert domain_of_case("CC0059") == "philips_15" and domain_of_case("CC0060") == "philips_3"
    assert [d.short for d in DOMAINS.values()] == ["Sm1.5", "Sm3", "GE1.5", "GE3", "Ph1.5", "Ph3"]
