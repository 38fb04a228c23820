import numpy as np

from diffstyle_lab.faces import avatars


def test_renders_are_deterministic_and_carry_their_factors():
    x1, f1 = avatars.make_faces(6, seed=3)
    x2, f2 = avatars.make_faces(6, seed=3)
    assert x1.shape == (6, 32, 32, 3) and x1.dtype == np.uint8
    assert np.array_equal(x1, x2) and f1 == f2
    x3, _ = avatars.make_faces(6, seed=4)
    assert not np.array_equal(x1, x3)
    for f in f1:
        assert f.family in avatars.FAMILIES and f.background in avatars.BACKGROUNDS


def test_background_colour_is_the_recorded_one():
    x, fs = avatars.make_faces(4, seed=1)
    for img, f in zip(x, fs):
        corner = img[0, 0]
        want = np.array([int(f.background[i:i + 2], 16) for i in (0, 2, 4)])
        assert np.abs(corner.astype(int) - want).max() <= 2


def test_same_identity_other_colours_and_other_identity_same_colours():
    rng = np.random.default_rng(0)
    _, (f,) = avatars.make_faces(1, seed=9)
    a = avatars.same_identity_other_colours(f, rng)
    b = avatars.other_identity_same_colours(f, rng)
    assert a.content() == f.content() and b.style() == f.style()
    ra, rf = avatars.render(a), avatars.render(f)
    assert not np.array_equal(ra, rf)


def test_pairs_differ_in_content_and_background():
    c, s, cf, sf = avatars.content_style_pairs(5, seed=2)
    assert c.shape == s.shape == (5, 32, 32, 3)
    for a, b in zip(cf, sf):
        assert a.content() != b.content() and a.background != b.background
