"""Methods of the other ABAW papers the toolkit builds on: `multitask` (AU / expression / valence-arousal heads), `temporal`
(LSTM / Transformer over frame features) and `pseudo_label` (teacher/student semi-supervised training)."""
