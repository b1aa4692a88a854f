#!/usr/bin/env bash
# The main job on the embedded synthetic faces, on one CPU:
#   MAE pretraining → conversion → curriculum fine-tuning → evaluation → prediction.
# Usage: bash recipes/demo.sh [OUTPUT_DIR]      (default runs/demo; about 2-3 minutes on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/demo}
LAUNCH=(accelerate launch --config_file accelerate_configs/cpu.yaml)

echo "== 1/5 MAE pretraining (micro ViT, 32 px, synthetic face stream)"
"${LAUNCH[@]}" recipes/pretrain_mae.py --config recipes/configs/pretrain_micro_cpu.yaml --output_dir "$OUT/mae"

echo "== 2/5 conversion: MAE encoder → ViTForCompoundExpression (ABAW7 compounds)"
cer-hf convert "$OUT/mae" "$OUT/cer-init" --compound-set abaw7 --drop-path-rate 0

echo "== 3/5 curriculum fine-tuning: stages [5,5,3,3] epochs, compound share [0,0.2,0.4,1]"
"${LAUNCH[@]}" recipes/curriculum.py --config recipes/configs/curriculum_micro_cpu.yaml \
    --model_name_or_path "$OUT/cer-init" --output_dir "$OUT/cer"

echo "== 4/5 evaluation on held-out synthetic faces (basic + compound)"
cer-hf evaluate "$OUT/cer" synthetic:all:700 --confusion-png "$OUT/confusion.png" --output-json "$OUT/eval.json"

echo "== 5/5 prediction on a few new synthetic compound faces"
python - "$OUT/faces" <<'PY'
import sys
from pathlib import Path
from cer_hf.data.synthetic import synthetic_dataset

folder = Path(sys.argv[1])
folder.mkdir(parents=True, exist_ok=True)
for row in synthetic_dataset(4, kind="compound", image_size=32, seed=777):
    row["image"].save(folder / f"{row['sample_id']:02d}_{row['label'].replace(' ', '_')}.png")
PY
cer-hf predict "$OUT/cer" "$OUT"/faces/*.png
echo "done: model in $OUT/cer, metrics in $OUT/eval.json, confusion matrix in $OUT/confusion.png"
