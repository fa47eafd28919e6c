"""`skygrid vision`: synthetic data, dataset import, training, ONNX export, detection.

    skygrid vision dataset --out work/ds --train 1500 --val 200 --test 200 --seed 2026
    skygrid vision import --format coco --map map.yaml annotations.json --into work/ds
    skygrid vision train --data work/ds --epochs 40 --imgsz 320 --out vision/models
    skygrid vision export --weights work/runs/train/weights/best.pt --out vision/models
    skygrid vision detect ...            (see `skygrid vision detect --help`)

Training needs ultralytics + torch (installed for development, not at run time); the
shipped model vision/models/skygrid-yolo.onnx runs with ONNX Runtime alone.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path


def add_parser(subparsers, help_text: str) -> argparse.ArgumentParser:
    p = subparsers.add_parser("vision", help=help_text, description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="vision_command", metavar="ACTION", required=True)

    d = sub.add_parser("dataset", help="render a YOLO dataset from the synthetic aerial camera",
                       description="Render random worlds with planted incidents and look-alikes (only the four "
                                   "patrol classes are labelled) into DIR/images|labels/{train,val,test} + data.yaml. "
                                   "Splits use different seeds, so they never share a world.")
    d.add_argument("--out", required=True, type=Path, help="dataset folder (created; other files kept)")
    d.add_argument("--train", type=int, default=1500, help="train frames (default 1500)")
    d.add_argument("--val", type=int, default=200, help="validation frames (default 200)")
    d.add_argument("--test", type=int, default=200, help="test frames (default 200)")
    d.add_argument("--seed", type=int, default=0, help="dataset seed (default 0)")
    d.add_argument("--camera", default="m3e", help="camera preset (streamed at 640 px wide; default m3e)")
    d.add_argument("--mix", default="default", choices=("default", "hard", "realistic"),
                   help="frame composition (vision.dataset.MIXES): default; hard = half the frames at "
                        "100-130 m AGL, twice the look-alikes, parked trucks next to hazmat fires; realistic = "
                        "everyday clutter (cars of every colour, legal white/blue buildings, trees, shadows, "
                        "tracks, flower beds, glare, steam), 40-150 m AGL, pitch to -45, smoky and smokeless "
                        "burns, dusk/haze/vignetting/blur/JPEG")
    d.set_defaults(func=run_dataset)

    i = sub.add_parser("import", help="merge local labelled data (YOLO/Roboflow/Darknet, VOC, COCO) or negatives",
                       description="Copy images and labels into a SkyGrid dataset, renaming classes with --map "
                                   "(YAML 'source: patrol class' or 'source: null'); unmapped classes are dropped "
                                   "and counted. yolo: ultralytics images/+labels/, Roboflow train/images + "
                                   "valid/labels, or a Darknet flat folder with a .names file; voc: Pascal VOC XML; "
                                   "coco: a COCO JSON; negatives: a folder of images with nothing to find "
                                   "(background, no --map). Images longer than --max-side px are shrunk.")
    i.add_argument("--format", required=True, choices=("yolo", "roboflow", "darknet", "voc", "coco", "negatives"),
                   help="source format (roboflow and darknet are read by the yolo reader)")
    i.add_argument("--map", type=Path, help="class-mapping YAML (required except for negatives)")
    i.add_argument("src", type=Path, help="dataset folder, or COCO annotations JSON")
    i.add_argument("--into", required=True, type=Path, help="SkyGrid dataset folder to merge into")
    i.add_argument("--images", type=Path, help="COCO: image folder (default: the JSON's folder)")
    i.add_argument("--split", choices=("train", "val", "test"), help="put everything in this split")
    i.add_argument("--prefix", help="file-name prefix for the copied images (default: source name)")
    i.add_argument("--max-side", type=int, default=640,
                   help="shrink images whose longest side exceeds this many px (default 640, the stream width; "
                        "0 keeps them)")
    i.set_defaults(func=run_import)

    t = sub.add_parser("train", help="train the nano YOLO from its yaml and export ONNX (needs ultralytics)",
                       description="Train a nano YOLO from scratch (no pretrained download; offline settings) "
                                   "on DIR/data.yaml, then export ONNX + class-name sidecar into --out.")
    t.add_argument("--data", type=Path, default=Path("work/dataset"), help="dataset folder (default work/dataset)")
    t.add_argument("--epochs", type=int, default=40, help="epochs (default 40)")
    t.add_argument("--imgsz", type=int, default=320, help="training and export input size in px (default 320)")
    t.add_argument("--batch", type=int, default=16, help="batch size (default 16)")
    t.add_argument("--model", "--from", dest="model", default="yolo11n.yaml",
                   help="model yaml (default yolo11n.yaml: from scratch), or --from MODEL to fine-tune a .pt or an "
                        "exported .onnx (e.g. vision/models/skygrid-yolo.onnx)")
    t.add_argument("--fraction", type=float, default=1.0, help="share of the train split to use (default 1)")
    t.add_argument("--hours", type=float, help="wall-clock budget; the epoch count is fitted to it")
    t.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    t.add_argument("--seed", type=int, default=0, help="training seed (default 0)")
    t.add_argument("--device", default="cpu", help="cpu (default) or a CUDA index such as 0")
    t.add_argument("--out", type=Path, default=Path("vision/models"), help="where the ONNX goes (default vision/models)")
    t.add_argument("--no-export", action="store_true", help="train only")
    t.set_defaults(func=run_train)

    h = sub.add_parser("harvest", help="export the command room's verdicts (确认 / 标记误报) as YOLO training data",
                       description="Confirmed detections become positives (frame, box, class), false alarms hard "
                                   "negatives (frame, no label). Fine-tune with `skygrid vision train --from MODEL`.")
    h.add_argument("--db", default=None, help="dispatch database URL (default: dispatch settings, SKYGRID_* env)")
    h.add_argument("--evidence-dir", type=Path, default=None, help="evidence folder (default: dispatch settings)")
    h.add_argument("--out", required=True, type=Path, help="dataset folder (created; merged)")
    h.add_argument("--split", default="train", choices=("train", "val", "test"))
    h.set_defaults(func=run_harvest)

    e = sub.add_parser("export", help="export trained weights (.pt) to ONNX with class names",
                       description="Export a trained ultralytics .pt to <out>/skygrid-yolo.onnx (+ .json sidecar).")
    e.add_argument("--weights", required=True, type=Path, help="trained .pt (e.g. work/runs/train/weights/best.pt)")
    e.add_argument("--imgsz", type=int, default=320, help="input size in px (default 320)")
    e.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")
    e.add_argument("--out", type=Path, default=Path("vision/models"), help="output folder (default vision/models)")
    e.set_defaults(func=run_export)

    try:
        detect_cli = importlib.import_module("vision.detect_cli")
    except ModuleNotFoundError as err:
        if err.name != "vision.detect_cli":
            raise
        detect_cli = None
    if detect_cli is not None:
        dp = sub.add_parser("detect", help="detect patrol classes in images or video with the ONNX model",
                            description=getattr(detect_cli, "__doc__", None))
        detect_cli.add_arguments(dp)
        dp.set_defaults(func=detect_cli.run)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])
    return p


def run(args: argparse.Namespace) -> int:
    return int(args.func(args) or 0)


def run_dataset(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
    from rich.table import Table

    from geo.camera import get_camera
    from vision.dataset import generate_dataset

    camera = get_camera(args.camera).scaled(640)
    console = Console()
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=console) as prog:
        tasks = {s: prog.add_task(f"render {s}", total=n) for s, n in
                 (("train", args.train), ("val", args.val), ("test", args.test)) if n > 0}
        summary = generate_dataset(args.out, args.train, args.val, args.test, seed=args.seed, camera=camera,
                                   mix=args.mix,
                                   progress=lambda s, k: prog.advance(tasks[s], k))
    table = Table(title=f"dataset {args.out}")
    for col in ("split", "frames", "no-label frames", *("boxes " + c for c in ("structure", "burning", "dumping", "hazmat"))):
        table.add_column(col)
    from vision.classes import PATROL_CLASSES

    for s, n in summary.frames.items():
        table.add_row(s, str(n), str(summary.empty_frames[s]), *(str(summary.boxes[s][c]) for c in PATROL_CLASSES))
    console.print(table)
    console.print(f"wrote {args.out / 'data.yaml'}")
    return 0


def run_import(args: argparse.Namespace) -> int:
    from rich.console import Console

    from vision.importers import (
        ImportErrorWithLocation,
        import_coco,
        import_negatives,
        import_voc,
        import_yolo,
        load_class_map,
    )

    console = Console(soft_wrap=True)  # an error stays one line, whatever the path length
    ms = args.max_side or None
    try:
        if args.format == "negatives":
            rep = import_negatives(args.src, args.into, prefix=args.prefix, split=args.split or "train", max_side=ms)
        else:
            if args.map is None:
                raise ImportErrorWithLocation(f"--format {args.format} needs --map (source class -> patrol class)")
            cmap = load_class_map(args.map)
            if args.format in ("yolo", "roboflow", "darknet"):
                rep = import_yolo(args.src, args.into, cmap, prefix=args.prefix, split=args.split, max_side=ms)
            elif args.format == "voc":
                rep = import_voc(args.src, args.into, cmap, prefix=args.prefix, split=args.split or "train",
                                 max_side=ms)
            else:
                rep = import_coco(args.src, args.into, cmap, images_dir=args.images, prefix=args.prefix,
                                  split=args.split or "train", max_side=ms)
    except ImportErrorWithLocation as e:
        console.print(f"[red]error:[/red] {e}")
        return 1
    console.print(f"imported {rep.images} images into {args.into}; boxes: {dict(rep.boxes)}")
    if rep.dropped:
        console.print(f"dropped (unmapped) classes: {dict(rep.dropped)}")
    for s in rep.skipped_images:
        console.print(f"[yellow]skipped[/yellow] {s}")
    return 0


def run_harvest(args: argparse.Namespace) -> int:
    from dispatch.core.config import Settings
    from vision.harvest import harvest

    st = Settings.from_env()
    rep = harvest(args.db or st.database_url, args.evidence_dir or st.evidence_dir, args.out, split=args.split)
    print(f"正样本 {sum(rep.positives.values())} {dict(rep.positives)}; 误报负样本 {rep.negatives}; "
          f"跳过 {dict(rep.skipped)}; 写入 {args.out}")
    return 0


def run_train(args: argparse.Namespace) -> int:
    try:
        from vision.train import result_dict, train
    except ImportError as e:  # pragma: no cover - depends on the environment
        print(f"training needs ultralytics and torch: {e}", file=sys.stderr)
        return 1
    r = train(args.data, epochs=args.epochs, imgsz=args.imgsz, out_dir=args.out, model_yaml=args.model,
              batch=args.batch, seed=args.seed, device=args.device, export=not args.no_export,
              fraction=args.fraction, threads=args.threads, hours=args.hours)
    from rich.console import Console

    Console().print(result_dict(r))
    return 0


def run_export(args: argparse.Namespace) -> int:
    from vision.train import MODEL_NAME, export_onnx

    out = export_onnx(args.weights, args.out / f"{MODEL_NAME}.onnx", imgsz=args.imgsz, opset=args.opset)
    print(f"wrote {out} and {out.with_suffix('.json')}")
    return 0
