"""`sslstudio labels`: create a project from a folder, show, import and export its labels."""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    project_help = ("project folder, or a bare name for a project in the default projects "
                    "folder")
    actions = parser.add_subparsers(dest="labels_action", metavar="ACTION", required=True)

    init = actions.add_parser("init", help="create a project from an image folder and index it")
    init.add_argument("project", metavar="PROJECT", help=project_help)
    init.add_argument("image_folder", metavar="IMAGE_FOLDER")
    init.add_argument("--name", help="project name (default: the folder name)")

    show = actions.add_parser("show", help="list the classes and how many images each has")
    show.add_argument("project", metavar="PROJECT", help=project_help)

    export = actions.add_parser("export", help="write the labels as CSV or ImageFolder")
    export.add_argument("project", metavar="PROJECT", help=project_help)
    where = export.add_mutually_exclusive_group(required=True)
    where.add_argument("--csv", metavar="OUT", help="CSV file with a filename,label header")
    where.add_argument("--imagefolder", metavar="DIR",
                       help="new or empty folder to fill with one folder per class")
    export.add_argument("--symlink", action="store_true",
                        help="with --imagefolder: link to the images instead of copying them")

    imp = actions.add_parser("import", help="read labels from CSV or an ImageFolder layout")
    imp.add_argument("project", metavar="PROJECT", help=project_help)
    source = imp.add_mutually_exclusive_group(required=True)
    source.add_argument("--csv", metavar="IN", help="CSV file: filename,label")
    source.add_argument("--imagefolder", metavar="DIR", help="folder with one folder per class")


def _init(args: argparse.Namespace) -> int:
    from sslstudio.data.scan import scan_folder
    from sslstudio.project import ProjectStore, resolve_project_dir

    project_dir = resolve_project_dir(args.project)
    with ProjectStore.create(project_dir, args.image_folder, name=args.name) as store:
        scan = scan_folder(store.image_root)
        summary = store.sync_index(scan)
    print(f"created project {project_dir}: {summary}")
    for bad in scan.bad[:20]:
        print(f"  unreadable: {bad.relpath}: {bad.reason}")
    if len(scan.bad) > 20:
        print(f"  … and {len(scan.bad) - 20} more unreadable files")
    return 0


def _show(store) -> int:
    classes = store.classes()
    print(f"project {store.name} ({store.project_dir}), images in {store.image_root}")
    print(f"{len(store.image_relpaths())} images, {sum(c.count for c in classes)} labelled")
    for info in classes:
        print(f"  {info.count:6d}  {info.name}  {info.color}")
    return 0


def _export(store, args: argparse.Namespace) -> int:
    from sslstudio.project.labels_io import export_csv, export_imagefolder

    if args.csv:
        count = export_csv(store, args.csv)
        print(f"{count} labels written to {args.csv}")
    else:
        report = export_imagefolder(store, args.imagefolder,
                                    mode="symlink" if args.symlink else "copy")
        print(report.summary())
    return 0


def _import(store, args: argparse.Namespace) -> int:
    from sslstudio.project.labels_io import import_csv, import_imagefolder

    report = import_csv(store, args.csv) if args.csv else import_imagefolder(store, args.imagefolder)
    print(report.summary())
    return 0


def run(args: argparse.Namespace) -> int:
    from sslstudio.project import ProjectError, ProjectStore, resolve_project_dir
    from sslstudio.project.labels_io import LabelsIOError

    try:
        if args.labels_action == "init":
            return _init(args)
        with ProjectStore.open(resolve_project_dir(args.project)) as store:
            if args.labels_action == "show":
                return _show(store)
            if args.labels_action == "export":
                return _export(store, args)
            return _import(store, args)
    except (ProjectError, LabelsIOError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
