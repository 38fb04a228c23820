"""The embedded default model's world: procedural cartoon faces with known factors (:mod:`.avatars`,
:mod:`.procedural` for out-of-domain images), the factor classifier (:mod:`.factors`), the ground truth of
injection (:mod:`.groundtruth`) and training the face model (:mod:`.train`)."""
