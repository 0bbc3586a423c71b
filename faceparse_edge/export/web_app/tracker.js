// Face tracks across video frames: runtime/tracker.py. Detections are matched by overlap, boxes and landmarks smoothed.

import { iou } from './geometry.js';

export class Track {
  constructor(id, box, landmarks) {
    this.id = id;
    this.box = box; // smoothed detector box [x, y, w, h], moved with the face between detections
    this.landmarks = landmarks; // smoothed five [x, y], moved with the box
    this.missed = 0;
    this.crop = null; // the crop parsed in the previous frame (null: not shown)
    this.probs = null; // smoothed class probabilities (C, S, S)
  }

  move(dx, dy) {
    this.box = [this.box[0] + dx, this.box[1] + dy, this.box[2], this.box[3]];
    if (this.landmarks) this.landmarks = this.landmarks.map(([x, y]) => [x + dx, y + dy]);
  }
}

export class FaceTracker {
  /** `settings`: the manifest's "tracker" (box_smoothing, max_missed, min_iou). */
  constructor(settings) {
    this.settings = settings;
    this.tracks = [];
    this.nextId = 0;
  }

  update(detections) {
    const { box_smoothing: a, max_missed: maxMissed, min_iou: minIou } = this.settings;
    const unmatched = [...detections];
    for (const track of this.tracks) {
      let best = null,
        bestIou = -1;
      for (const d of unmatched) {
        const overlap = iou(track.box, d.box);
        if (overlap > bestIou) {
          best = d;
          bestIou = overlap;
        }
      }
      if (best && bestIou >= minIou) {
        track.box = track.box.map((t, i) => a * t + (1 - a) * best.box[i]);
        if (best.landmarks) {
          track.landmarks = track.landmarks
            ? track.landmarks.map(([x, y], i) => [
                a * x + (1 - a) * best.landmarks[i][0],
                a * y + (1 - a) * best.landmarks[i][1],
              ])
            : best.landmarks;
        }
        track.missed = 0;
        unmatched.splice(unmatched.indexOf(best), 1);
      } else {
        track.missed += 1;
      }
    }
    this.tracks = this.tracks.filter((t) => t.missed <= maxMissed);
    for (const d of unmatched) this.tracks.push(new Track(this.nextId++, d.box, d.landmarks));
    return this.tracks;
  }
}
